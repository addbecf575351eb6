"""A log sink that keeps what a machine logs, for assertions in tests."""

from __future__ import annotations

import re
from typing import final

from .._types import LogLevel

__all__ = ["LogCapture"]

_ANY_PREFIX = re.compile(r"^\[[^\]\s]{1,5}\] (?=\[)")


@final
class LogCapture:
    """A `logger=` sink that records `(level, text)` pairs.

    `lines` gives the first line of each record without the machine-id
    prefix (``[mach1] ``), so tests can compare them with the formats of
    docs/design/semantics.md §11.2. Pass `machine_id` to strip only that machine's prefix.
    """

    def __init__(self, machine_id: str | None = None) -> None:
        self.records: list[tuple[LogLevel, str]] = []
        """Everything logged, in order."""
        self._prefix = None if machine_id is None else f"[{machine_id[:5]}] "

    def __call__(self, level: LogLevel, text: str) -> None:
        """Record one log entry (the sink protocol)."""
        self.records.append((level, text))

    def clear(self) -> None:
        """Forget everything recorded so far."""
        self.records.clear()

    def _strip(self, line: str) -> str:
        if self._prefix is None:
            return _ANY_PREFIX.sub("", line, count=1)
        return line[len(self._prefix) :] if line.startswith(self._prefix) else line

    @property
    def lines(self) -> list[str]:
        """The first line of every record, without the machine-id prefix."""
        return [self._strip(text.split("\n", 1)[0]) for _level, text in self.records]

    def with_prefix(self, prefix: str) -> list[str]:
        """The `lines` that start with `prefix`, e.g. ``"[state]"``."""
        return [line for line in self.lines if line.startswith(prefix)]

    def levels_of(self, prefix: str) -> list[int]:
        """The levels of the records whose line starts with `prefix`."""
        return [
            int(level)
            for (level, _text), line in zip(self.records, self.lines, strict=True)
            if line.startswith(prefix)
        ]

    @property
    def text(self) -> str:
        """Every record, full text, joined by newlines."""
        return "\n".join(text for _level, text in self.records)
