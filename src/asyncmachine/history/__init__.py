"""History: what a machine did, kept and queried (Go's pkg/history).

`track(mach, store, ...)` binds a tracer that records every transition
(filtered as Go's config says) into a store: `MemoryStore` (bounded, this
process) or `SqlStore(url)` (SQLite by default, PostgreSQL through psycopg 3;
needs the `history` extra). Queries are awaitable on asyncio and trio;
`restore(store, id, schema)` rebuilds a machine from its last record. See
docs/history.md.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._base import Store as Store
from ._memory import MemoryStore as MemoryStore
from ._records import ConditionTime as ConditionTime
from ._records import Config as Config
from ._records import HistoryError as HistoryError
from ._records import MachineRecord as MachineRecord
from ._records import Query as Query
from ._records import Record as Record
from ._records import TimeRecord as TimeRecord
from ._records import TransitionRecord as TransitionRecord
from ._tracker import History as History
from ._tracker import restore as restore
from ._tracker import track as track

if TYPE_CHECKING:
    from ._sql import SCHEMA_VERSION as SCHEMA_VERSION
    from ._sql import SqlStore as SqlStore

__all__ = [
    "SCHEMA_VERSION",
    "ConditionTime",
    "Config",
    "History",
    "HistoryError",
    "MachineRecord",
    "MemoryStore",
    "Query",
    "Record",
    "SqlStore",
    "Store",
    "TimeRecord",
    "TransitionRecord",
    "restore",
    "track",
]

_LAZY = {"SqlStore", "SCHEMA_VERSION"}


def __getattr__(name: str) -> Any:
    # SQLAlchemy is imported on first use: the memory store needs no extra
    if name in _LAZY:
        try:
            module = importlib.import_module("._sql", __name__)
        except ImportError as err:
            raise ImportError(
                f"asyncmachine.history.{name} needs SQLAlchemy: "
                "pip install 'asyncmachine[history]'"
            ) from err
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
