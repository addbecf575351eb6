"""Session files: a versioned header, then zlib-compressed msgpack.

Layout: the 8-byte magic `AMDBG\\x00\\x01\\n` (format version 1), then zlib
over one msgpack map `{"v": 1, "machines": [...], "dropped": n}`. Go's
am-dbg exports (`.gob.br`) are read by `read_go_session`. See docs/debugger.md.
"""

from __future__ import annotations

import os
import zlib
from pathlib import Path
from typing import Any

import msgpack  # type: ignore[import-untyped]

from ._go_import import GoImportError, read_go_session
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
    """Read a session file, or a session exported by Go's am-dbg.

    Files named `*.gob.br` / `*.gob`, and files without this format's magic,
    go to `read_go_session` (docs/debugger.md, "Go sessions").

    Raises:
        ValueError: naming the file when it is neither a session file nor a
            Go export, has another version, or is damaged (`GoImportError`, a
            ValueError, for Go exports).
    """
    p = Path(path)
    if p.name.endswith((".gob.br", ".gob")):
        return read_go_session(p, max_memory)
    data = p.read_bytes()
    if data[:5] != MAGIC[:5] or len(data) < len(MAGIC):
        try:
            return read_go_session(data, max_memory, name=str(p))
        except GoImportError as exc:
            raise ValueError(
                f"{p}: not an am-dbg session file, nor a Go am-dbg export: {exc}"
            ) from exc
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
