"""Log sinks and the args mapper (docs/design/semantics.md §11)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeAlias

from ._args import args_log_fields
from ._types import LogLevel

__all__ = [
    "LogArgsMapper",
    "LogSink",
    "cut",
    "default_log_args_mapper",
    "new_log_args_mapper",
    "stdlib_sink",
]

LogSink: TypeAlias = Callable[[LogLevel, str], None]
"""Receives every log line a machine emits, with its level."""

LogArgsMapper: TypeAlias = Callable[[Mapping[str, Any]], dict[str, str]]
"""Picks the mutation args that log lines show, as strings."""

_logger = logging.getLogger("asyncmachine")

DEFAULT_LOG_KEYS = ("name", "id", "port", "addr", "err", "path", "url", "uri")


def cut(text: str, n: int) -> str:
    """Shorten `text` to at most `n` characters, marking the cut with '...'."""
    if len(text) <= n:
        return text
    if n < 5:
        return text[:n]
    return text[: n - 3] + "..."


def new_log_args_mapper(max_len: int, keys: Iterable[str]) -> LogArgsMapper:
    """Return a mapper that logs the given arg keys, values cut to `max_len`.

    It also logs the log-tagged fields of typed args (`am.arg(log=...)`),
    cut the same way; a plain arg of the same name wins.
    """
    if isinstance(keys, str):
        raise TypeError("keys must be a list of arg names, not a string")
    wanted = tuple(keys)

    def mapper(args: Mapping[str, Any]) -> dict[str, str]:
        out = {k: cut(str(args[k]), max_len) for k in wanted if k in args}
        for tag, text in args_log_fields(args).items():
            out.setdefault(tag, cut(text, max_len))
        return out

    return mapper


default_log_args_mapper: LogArgsMapper = new_log_args_mapper(20, DEFAULT_LOG_KEYS)


def format_args(mapper: LogArgsMapper | None, args: Mapping[str, Any]) -> str:
    """Format mapped args as ` (k1=v1 k2=v2)`, keys sorted; '' when none."""
    if mapper is None or not args:
        return ""
    mapped = mapper(args)
    if not mapped:
        return ""
    return " (" + " ".join(f"{k}={mapped[k]}" for k in sorted(mapped)) + ")"


def stdlib_sink(machine_id: str) -> LogSink:
    """Return a sink that hands lines to the `asyncmachine` stdlib logger."""
    extra = {"machine_id": machine_id}

    def sink(level: LogLevel, text: str) -> None:
        _logger.info(text, extra={**extra, "am_level": int(level)})

    return sink
