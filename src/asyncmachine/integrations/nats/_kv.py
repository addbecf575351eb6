"""Snapshots of a machine's export in a JetStream key-value bucket."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from types import TracebackType
from typing import Any, final

import anyio
import anyio.abc
import nats.js.errors
from nats.js.kv import KeyValue

import asyncmachine as am

from ._conn import NatsClient, NatsConn, as_conn


async def _bucket(nc: NatsClient, bucket: str, create: bool) -> KeyValue:
    js = nc.jetstream()
    try:
        return await js.key_value(bucket)
    except nats.js.errors.BucketNotFoundError:
        if not create:
            raise
    try:
        return await js.create_key_value(bucket=bucket, history=1)
    except nats.js.errors.Error:
        # created meanwhile by another process
        return await js.key_value(bucket)


async def _get(nc: NatsClient, bucket: str, key: str) -> bytes | None:
    try:
        kv = await _bucket(nc, bucket, create=False)
        entry = await kv.get(key)
    except nats.js.errors.NotFoundError:
        return None
    return entry.value


async def load_snapshot(
    conn: NatsConn | NatsClient, bucket: str, key: str
) -> am.Serialized | None:
    """The export stored under `key` in `bucket`, or None when there is none."""
    data = await as_conn(conn)._run(_get, as_conn(conn).client, bucket, key)
    if data is None:
        return None
    try:
        return am.Serialized.from_json(json.loads(data))
    except ValueError as e:
        raise ValueError(f"snapshot {bucket}/{key}: {e}") from None


async def restore(
    conn: NatsConn | NatsClient,
    bucket: str,
    schema: Mapping[str, am.State],
    *,
    id: str,
    **machine_kwargs: Any,
) -> am.Machine:
    """A machine with `id`, restored from its snapshot in `bucket` if any.

    With a snapshot under the key `id` this is `am.Machine.import_` (clocks
    and queue tick restored, `MachineRestored` added when the schema has
    it); without, a fresh `am.Machine(schema, id=id, ...)`.
    """
    data = await load_snapshot(conn, bucket, id)
    if data is None:
        return am.Machine(schema, id=id, **machine_kwargs)
    return am.Machine.import_(data, schema, **machine_kwargs)


class _Watch(am.Tracer):
    def __init__(self, owner: KvSnapshots) -> None:
        self.owner = owner

    def queue_end(self, machine: am.Machine) -> None:
        self.owner._changed()


@final
class KvSnapshots:
    """Keep `mach.export()` in a JetStream key-value bucket while open.

    ```py
    async with snapshots(mach, conn, "machines"):
        mach.add1("Ready")  # each change of the clocks is written
    ```

    Writes a snapshot on entry, after each change of the machine's clocks
    (coalesced: one write in flight, always the latest export) and on exit,
    under the key `mach.id` (or `key`). `restore()` reads it back. A failed
    write is kept in `err` and retried with the next change.
    """

    def __init__(
        self,
        mach: am.Machine,
        conn: NatsConn | NatsClient,
        bucket: str,
        *,
        key: str | None = None,
    ) -> None:
        self.mach: am.Machine = mach
        self.conn: NatsConn = as_conn(conn)
        self.bucket = bucket
        self.key: str = key or mach.id
        self.err: Exception | None = None
        self.revision: int = 0
        self.writes: int = 0
        self._latest = mach.export()
        self._gen = 0
        self._done = 0
        self._wake = anyio.Event()
        self._written = anyio.Event()
        self._tracer = _Watch(self)
        self._tg: anyio.abc.TaskGroup | None = None
        self._kv: KeyValue | None = None

    def _changed(self) -> None:
        mach = self.mach
        if mach.disposed or mach.time() == self._latest.time:
            return
        self._latest = mach.export()
        self._gen += 1
        self._wake.set()

    async def _write(self) -> None:
        data = json.dumps(self._latest.to_json(), separators=(",", ":")).encode()
        gen = self._gen
        try:
            if self._kv is None:
                self._kv = await self.conn._run(
                    _bucket, self.conn.client, self.bucket, True
                )
            self.revision = await self.conn._run(self._kv.put, self.key, data)
        except Exception as e:
            self.err = e
            self.mach.log("nats: snapshot %s/%s failed: %s", self.bucket, self.key, e)
            return
        self.err = None
        self.writes += 1
        self._done = max(self._done, gen)
        self._written.set()
        self._written = anyio.Event()

    async def _writer(self) -> None:
        while True:
            await self._wake.wait()
            self._wake = anyio.Event()
            await self._write()

    async def sync(self) -> None:
        """Return once the machine's current clocks are stored."""
        self._changed()
        while self._done < self._gen:
            await self._written.wait()
            if self.err is not None:
                raise self.err

    async def __aenter__(self) -> KvSnapshots:
        if self._tg is not None:
            raise RuntimeError("the snapshots are already running")
        await self._write()
        if self.err is not None:
            raise self.err
        tg = anyio.create_task_group()
        await tg.__aenter__()
        self._tg = tg
        tg.start_soon(self._writer)
        self.mach.bind_tracer(self._tracer)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._tracer in self.mach.tracers:
            with contextlib.suppress(ValueError):
                self.mach.detach_tracer(self._tracer)
        tg, self._tg = self._tg, None
        if tg is not None:
            tg.cancel_scope.cancel()
            await tg.__aexit__(None, None, None)
        # the last clocks, also when the machine was disposed meanwhile
        if not self.mach.disposed:
            self._latest = self.mach.export()
        with anyio.CancelScope(shield=True):
            await self._write()


def snapshots(
    mach: am.Machine,
    conn: NatsConn | NatsClient,
    bucket: str,
    *,
    key: str | None = None,
) -> KvSnapshots:
    """Keep `mach`'s export in the key-value `bucket` (created if missing)."""
    return KvSnapshots(mach, conn, bucket, key=key)
