"""Session files: a versioned header, then zlib-compressed msgpack.

Layout: the 8-byte magic `AMDBG\\x00\\x01\\n` (format version 1), then zlib
over one msgpack map `{"v": 1, "machines": [...], "dropped": n}`. Go's
am-dbg sessions (`.gob.br`) are read by `asyncmachine.debugger._go_import`
when installed. See docs/debugger.md.
"""

from __future__ import annotations

import importlib
import os
import zlib
from pathlib import Path
from typing import Any

import msgpack  # type: ignore[import-untyped]

from ._model import Session
from ._wire import machine_from_wire, machine_to_wire

__all__ = ["FORMAT_VERSION", "MAGIC", "read_session", "write_session"]

FORMAT_VERSION = 1
"""Version of the session file format."""
MAGIC = b"AMDBG\x00\x01\n"
"""The first bytes of a session file (the second-last byte is the version)."""


def write_session(path: str | os.PathLike[str], session: Session) -> None:
    """Write `session` to `path` (atomically: a temp file, then a rename)."""
    body: dict[str, Any] = {
        "v": FORMAT_VERSION,
        "dropped": session.dropped,
        "machines": [
            machine_to_wire(m, transitions=True) for m in session.machines.values()
        ],
    }
    data = MAGIC + zlib.compress(msgpack.packb(body, use_bin_type=True), 6)
    p = Path(path)
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(p)


def read_session(path: str | os.PathLike[str], max_memory: int = 0) -> Session:
    """Read a session file; `.gob.br` files go to the Go session importer.

    Raises ValueError naming the file when it is not a session file, has
    another version, or is damaged.
    """
    p = Path(path)
    if p.name.endswith(".gob.br"):
        try:
            mod = importlib.import_module("asyncmachine.debugger._go_import")
        except ImportError as exc:
            raise ValueError(
                f"{p}: reading Go am-dbg sessions (.gob.br) is not available"
            ) from exc
        session: Session = mod.read_go_session(p)
        return session
    data = p.read_bytes()
    if data[:5] != MAGIC[:5] or len(data) < len(MAGIC):
        raise ValueError(f"{p}: not an am-dbg session file")
    if data[: len(MAGIC)] != MAGIC:
        raise ValueError(
            f"{p}: session file version {data[6]}, this reader reads {FORMAT_VERSION}"
        )
    try:
        body = msgpack.unpackb(zlib.decompress(data[len(MAGIC) :]), raw=False)
        if body.get("v") != FORMAT_VERSION:
            raise ValueError(f"body version {body.get('v')!r}")
        session = Session(max_memory=max_memory)
        for raw in body["machines"]:
            session.add_machine(machine_from_wire(raw))
        session.dropped += int(body.get("dropped", 0))
    except (zlib.error, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"{p}: damaged session file: {exc}") from exc
    except msgpack.UnpackException as exc:
        raise ValueError(f"{p}: damaged session file: {exc}") from exc
    return session
