"""Expose a machine on NATS subjects: `async with expose(mach, conn, subject):`."""

from __future__ import annotations

import math
from types import TracebackType
from typing import Any, Final, final

import anyio
import anyio.abc

import asyncmachine as am

from .._json import (
    RESPONSE_KINDS,
    GetterReq,
    Kind,
    MutationReq,
    RequestError,
    WaitingReq,
    decode,
    dumps,
    error_response,
    handle_getter,
    handle_mutation,
    parse_request,
    start_waiting,
    waiting_response,
)
from ._conn import NatsClient, NatsConn, Subscription, as_conn

#: The default limit of a request's size, in bytes.
DEFAULT_MAX_SIZE: Final = 64 * 1024

_RESP_OF: Final[dict[str, Kind]] = {
    Kind.REQ_MUTATION: Kind.RESP_MUTATION,
    Kind.REQ_WAITING: Kind.RESP_WAITING,
    Kind.REQ_GETTER: Kind.RESP_GETTER,
}

_BAD_CHARS: Final = frozenset(" \t\r\n*>")


def _check_subject(subject: str, what: str, *, token: bool = False) -> None:
    bad = (
        not isinstance(subject, str)
        or not subject
        or any(c in _BAD_CHARS for c in subject)
        or ("." in subject if token else "" in subject.split("."))
    )
    if bad:
        rule = "one token: no dots" if token else "dot-separated tokens"
        raise ValueError(
            f"{what} {subject!r} is not a NATS subject ({rule}, no spaces or wildcards)"
        )


@final
class Exposure:
    """A machine answering requests on NATS; made by `expose()`."""

    def __init__(
        self,
        mach: am.Machine,
        conn: NatsConn | NatsClient,
        subject: str,
        queue: str | None = None,
        *,
        max_size: int = DEFAULT_MAX_SIZE,
        max_waits: int = 1000,
        wait_timeout: float | None = None,
    ) -> None:
        _check_subject(subject, "subject")
        _check_subject(mach.id, "the machine ID", token=True)
        if queue is not None:
            _check_subject(queue, "queue group", token=True)
        if max_size < 1 or max_waits < 0:
            raise ValueError("max_size must be >= 1 and max_waits >= 0")
        self.mach: am.Machine = mach
        self.subject: str = subject
        self.queue = queue
        self.max_size = max_size
        self.max_waits = max_waits
        self.wait_timeout = wait_timeout
        self._conn = as_conn(conn)
        self._tg: anyio.abc.TaskGroup | None = None
        self._subs: list[Subscription] = []
        self._waits = 0
        self._unhook: Any = None

    @property
    def subjects(self) -> tuple[str, str]:
        """The shared subject and the machine's own `<subject>.<machine id>`."""
        return self.subject, f"{self.subject}.{self.mach.id}"

    @property
    def pending_waits(self) -> int:
        """Waits that are not answered yet."""
        return self._waits

    async def __aenter__(self) -> Exposure:
        if self._tg is not None:
            raise RuntimeError("the exposure is already open")
        conn = self._conn
        tg = anyio.create_task_group()
        await tg.__aenter__()
        self._tg = tg
        try:
            shared, own = self.subjects
            self._subs.append(
                await conn.subscribe(shared, self._on_msg, queue=self.queue or "")
            )
            self._subs.append(await conn.subscribe(own, self._on_msg))
            # the server knows both subscriptions before the block runs
            await conn.flush()
        except BaseException:
            await self._close()
            raise
        self._unhook = self.mach.on_dispose(self._on_dispose)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._close()

    async def _close(self) -> None:
        if self._unhook is not None:
            self._unhook()
            self._unhook = None
        with anyio.CancelScope(shield=True):
            await self._unsubscribe()
        # the task group was entered outside any scope opened here
        tg, self._tg = self._tg, None
        if tg is not None:
            tg.cancel_scope.cancel()
            await tg.__aexit__(None, None, None)

    async def _unsubscribe(self) -> None:
        subs, self._subs = self._subs, []
        for sub in subs:
            await sub.unsubscribe()

    def _on_dispose(self) -> None:
        tg = self._tg
        if tg is not None:
            tg.start_soon(self._unsubscribe)

    # ----------------------------------------------------------- requests

    async def _reply(self, subject: str, resp: dict[str, Any]) -> None:
        if not subject:
            return
        try:
            await self._conn.publish_soon(subject, dumps(resp))
        except Exception as e:
            self.mach.log("nats: reply to %s failed: %s", subject, e)

    async def _on_msg(self, subject: str, reply: str, data: bytes) -> None:
        mach = self.mach
        if len(data) > self.max_size:
            await self._reply(
                reply,
                error_response(
                    Kind.RESP_ERROR,
                    f"message of {len(data)} bytes exceeds the limit of "
                    f"{self.max_size} bytes",
                    mach.id,
                ),
            )
            return
        try:
            obj = decode(data)
        except RequestError as e:
            await self._reply(reply, error_response(Kind.RESP_ERROR, str(e), mach.id))
            return
        kind = obj["kind"]
        if kind in RESPONSE_KINDS:
            # a response, e.g. a wait answered on the request subject
            return
        resp_kind = _RESP_OF.get(kind, Kind.RESP_ERROR)
        try:
            req = parse_request(obj)
        except RequestError as e:
            # a wait published without a reply inbox is answered on its subject
            target = reply or (subject if resp_kind is Kind.RESP_WAITING else "")
            await self._reply(target, error_response(resp_kind, str(e), mach.id))
            return
        if isinstance(req, MutationReq):
            await self._reply(reply, handle_mutation(mach, req))
        elif isinstance(req, GetterReq):
            await self._reply(reply, handle_getter(mach, req))
        else:
            await self._start_wait(req, reply or subject)

    async def _start_wait(self, req: WaitingReq, target: str) -> None:
        mach = self.mach
        try:
            ev = start_waiting(mach, req)
        except RequestError as e:
            await self._reply(
                target, error_response(Kind.RESP_WAITING, str(e), mach.id)
            )
            return
        if ev.is_set():
            await self._reply(target, waiting_response(mach, req))
            return
        tg = self._tg
        if tg is None or self._waits >= self.max_waits:
            await self._reply(
                target,
                error_response(
                    Kind.RESP_WAITING,
                    f"machine {mach.id} has {self._waits} pending waits, the limit",
                    mach.id,
                ),
            )
            return
        # each pending wait in a task of its own: it never stalls the others
        self._waits += 1
        tg.start_soon(self._wait, ev, req, target)

    async def _wait(self, ev: am.WhenEvent, req: WaitingReq, target: str) -> None:
        mach = self.mach
        limits = [t for t in (req.timeout, self.wait_timeout) if t is not None]
        timeout = min(limits) if limits else math.inf
        try:
            with anyio.move_on_after(timeout) as scope:
                await ev.wait()
        except anyio.get_cancelled_exc_class():
            self._waits -= 1
            with anyio.move_on_after(1, shield=True):
                await self._reply(
                    target,
                    error_response(
                        Kind.RESP_WAITING,
                        f"machine {mach.id} stopped answering on {self.subject}",
                        mach.id,
                    ),
                )
            raise
        # not pending any more by the time the requester reads the answer
        self._waits -= 1
        if scope.cancelled_caught:
            resp = error_response(
                Kind.RESP_WAITING, f"the wait timed out after {timeout}s", mach.id
            )
        else:
            resp = waiting_response(mach, req)
        await self._reply(target, resp)


def expose(
    mach: am.Machine,
    conn: NatsConn | NatsClient,
    subject: str,
    queue: str | None = None,
    *,
    max_size: int = DEFAULT_MAX_SIZE,
    max_waits: int = 1000,
    wait_timeout: float | None = None,
) -> Exposure:
    """Answer JSON requests for `mach` on `subject` and `<subject>.<machine id>`.

    Use as `async with expose(mach, conn, "workers"):`, in the machine's
    event loop. `queue` puts the shared subject in a queue group, so that
    each request there reaches one machine of the group. Mutations and
    getters are answered at once; each wait that does not hold yet waits in
    a task of its own (at most `max_waits`, each at most `wait_timeout`
    seconds or the request's `timeout`). A request larger than `max_size`
    bytes, malformed, or naming unknown states gets an error response and
    leaves the machine unchanged.
    """
    return Exposure(
        mach,
        conn,
        subject,
        queue,
        max_size=max_size,
        max_waits=max_waits,
        wait_timeout=wait_timeout,
    )
