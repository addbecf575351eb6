"""Structured logging: machine log lines as stdlib records with extra fields."""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final, final

from .._tracer import Tracer
from .._types import LogLevel
from ._common import logged_args

if TYPE_CHECKING:
    from .._runtime import Machine
    from .._transition import Transition

__all__ = [
    "AM_FIELDS",
    "DEFAULT_LEVELS",
    "JsonFormatter",
    "StructuredLogger",
    "bind_logging",
]

DEFAULT_LEVELS: Final[Mapping[LogLevel, int]] = {
    LogLevel.NOTHING: logging.INFO,
    LogLevel.EXTERNAL: logging.INFO,
    LogLevel.CHANGES: logging.INFO,
    LogLevel.OPS: logging.INFO,
    LogLevel.DECISIONS: logging.DEBUG,
    LogLevel.EVERYTHING: logging.DEBUG,
}
"""The stdlib level of each machine log level; `[error...]` lines are ERROR.

As asyncmachine-go's Loki and OpenTelemetry loggers: up to `OPS` is INFO,
`DECISIONS` and `EVERYTHING` are DEBUG."""

AM_FIELDS: Final = (
    "machine_id",
    "parent_id",
    "am_level",
    "tx_id",
    "mutation",
    "called_states",
    "states",
    "am_args",
)
"""The `extra` fields a `StructuredLogger` adds to every record."""

_STD_ATTRS: Final = frozenset(
    logging.LogRecord("", 0, "", 0, "", None, None).__dict__
) | {"message", "asctime", "taskName"}


@final
class StructuredLogger(Tracer):
    """A machine's log sink that writes stdlib `logging` records with context.

    Every line the machine logs becomes a record of `logger` (default: the
    `asyncmachine` logger) whose `extra` fields are listed in `AM_FIELDS`:
    the machine id and its parent's, the machine log level, the running
    transition's id, mutation type, called states and logged args, and the
    active states. JSON formatters and log shippers (e.g. to Loki) pick
    them up as fields. It is a tracer too, to know the running transition:
    use `bind_logging`, which binds both roles to one machine.

    It is bound as the machine's tracer only while the machine logs: a
    logger whose machine's log level is `NOTHING` is not a tracer (so the
    machine costs what an unbound one does); the first record it emits binds
    it, and a transition that ends at level `NOTHING` detaches it again.
    """

    def __init__(
        self,
        logger: logging.Logger | str | None = None,
        *,
        levels: Mapping[LogLevel, int] | None = None,
        inherit: bool = True,
    ) -> None:
        """Log to `logger` (a Logger or its name), mapping levels by `levels`.

        With `inherit` (default) machines created with this machine as
        their parent get a `StructuredLogger` of their own, on the same
        logger.
        """
        if logger is None or isinstance(logger, str):
            logger = logging.getLogger(logger or "asyncmachine")
        self.logger: logging.Logger = logger
        """The stdlib logger records go to."""
        self.levels: dict[LogLevel, int] = {**DEFAULT_LEVELS, **(levels or {})}
        """Stdlib level per machine log level."""
        self.inherit = inherit
        self._mach: Machine | None = None
        self._tx: Transition | None = None

    # ------------------------------------------------------------ hooks

    def machine_init(self, machine: Machine) -> None:
        """Remember the machine (the first one only: one logger, one machine)."""
        if self._mach is None:
            self._mach = machine

    def new_submachine(self, parent: Machine, machine: Machine) -> None:
        """Give a new submachine its own structured logger."""
        if self.inherit and parent is self._mach:
            bind_logging(machine, self.logger, levels=self.levels)

    def transition_init(self, transition: Transition) -> None:
        """Track the running transition."""
        self._tx = transition

    def transition_end(self, transition: Transition) -> None:
        """The transition ended; stop tracing when the machine logs nothing."""
        self._tx = None
        mach = self._mach
        if (
            mach is not None
            and transition.machine is mach
            and mach.log_level is LogLevel.NOTHING
        ):
            mach.detach_tracer(self)

    def machine_dispose(self, machine_id: str) -> None:
        """No transition runs any more."""
        self._tx = None

    # ------------------------------------------------------------- sink

    def __call__(self, level: LogLevel, text: str) -> None:
        """Log one machine line (the `am.LogSink` signature)."""
        py_level = self.levels.get(level, logging.INFO)
        # the line may start with the machine id's `[abcde] ` prefix
        head = text[:16]
        if head.startswith("[error") or "] [error" in head:
            py_level = logging.ERROR
        logger = self.logger
        if not logger.isEnabledFor(py_level):
            return
        mach = self._mach
        if mach is not None and self not in mach.tracers:
            self._trace(mach)
        logger.log(py_level, text, extra=self.fields(level))

    def _trace(self, mach: Machine) -> None:
        """Bind as `mach`'s tracer, picking up a transition already running."""
        mach.bind_tracer(self)
        tx = mach.transition
        if tx is not None and not tx.is_completed:
            self._tx = tx

    def fields(self, level: LogLevel = LogLevel.CHANGES) -> dict[str, Any]:
        """The `extra` fields a line logged now at `level` gets."""
        mach = self._mach
        tx = self._tx
        mut = tx.mutation if tx is not None else None
        return {
            "machine_id": mach.id if mach is not None else "",
            "parent_id": mach.parent_id if mach is not None else "",
            "am_level": int(level),
            "tx_id": tx.id if tx is not None else "",
            "mutation": str(mut.type) if mut is not None else "",
            "called_states": list(mut.called) if mut is not None else [],
            "states": mach.active_states if mach is not None else [],
            "am_args": (
                logged_args(mach, mut.args)
                if mut is not None and mach is not None
                else {}
            ),
        }

    def __repr__(self) -> str:
        mid = self._mach.id if self._mach is not None else None
        return f"<StructuredLogger {self.logger.name} machine={mid}>"


def bind_logging(
    mach: Machine,
    logger: logging.Logger | str | None = None,
    *,
    levels: Mapping[LogLevel, int] | None = None,
    log_level: LogLevel | int | None = None,
    inherit: bool = True,
) -> StructuredLogger:
    """Send `mach`'s log lines to stdlib `logging` with structured extras.

    Makes a new `StructuredLogger` the machine's log sink and returns it.
    `log_level` also sets the machine's log level (otherwise keep it, e.g.
    from `AM_LOG`); nothing is logged at `NOTHING`. As in asyncmachine-go,
    the messages lose their `[id] ` prefix (`mach.log_id = False`): the id
    is the `machine_id` field. It is bound as the
    machine's tracer too, but only while the level is above `NOTHING` (see
    `StructuredLogger`): with logging off the machine runs at the cost of
    an unbound one. Submachines inherit the logger only from a parent whose
    logger is bound as a tracer when they are created.
    """
    sl = StructuredLogger(logger, levels=levels, inherit=inherit)
    if log_level is not None:
        mach.log_level = LogLevel(log_level)
    sl._mach = mach
    mach.logger = sl
    mach.log_id = False
    if mach.log_level is not LogLevel.NOTHING:
        mach.bind_tracer(sl)
    return sl


@final
class JsonFormatter(logging.Formatter):
    """Formats each record as one JSON object per line.

    Keys: `time` (ISO 8601, UTC), `level`, `logger`, `message`, every extra
    field of the record (the `AM_FIELDS` of machine lines among them) and
    `exc_info` when there is a traceback. Non-JSON values become strings.
    """

    def __init__(self, *, extra: bool = True, keys: Iterable[str] = ()) -> None:
        """With `extra=False` only the names in `keys` are taken from the
        record's extra fields."""
        super().__init__()
        self.extra = extra
        self.keys: tuple[str, ...] = tuple(keys)

    def format(self, record: logging.LogRecord) -> str:
        """The record as a JSON line."""
        created = dt.datetime.fromtimestamp(record.created, tz=dt.UTC)
        data: dict[str, Any] = {
            "time": created.isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        attrs = record.__dict__
        if self.extra:
            data.update({k: v for k, v in attrs.items() if k not in _STD_ATTRS})
        for key in self.keys:
            if key in attrs:
                data[key] = attrs[key]
        if record.exc_info:
            data["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str)
