"""Worker processes of tests/test_node.py: ``python -m node_workers [MODE]``.

MODE: none (a normal worker), ``crash`` (exits before registering),
``badsecret`` (registers with a wrong secret), ``badschema`` (serves a
schema with an extra state).
"""

from __future__ import annotations

import hashlib
import os
import sys
from typing import Any

import anyio

import asyncmachine as am
from asyncmachine import node
from asyncmachine.states import WORKER_SCHEMA

OTHER_SCHEMA: am.Schema = {**WORKER_SCHEMA, "Extra": am.State()}


async def work(data: Any) -> Any:
    """The test work: `hash`, `pid`, `block` (until killed) or `fail`."""
    op = data["op"]
    if op == "hash":
        return hashlib.sha256(data["data"]).hexdigest()
    if op == "pid":
        return os.getpid()
    if op == "block":
        await anyio.sleep_forever()
    raise ValueError(f"bad op {op!r}")


def main(argv: list[str]) -> None:
    """Run a worker in the mode of `argv` (see the module docstring)."""
    mode = next((a for a in argv if a in ("crash", "badsecret", "badschema")), "")
    if mode == "crash":
        sys.exit("this worker crashes at start")
    if mode == "badsecret":
        os.environ[node.SECRET_ENV] = "not-the-secret"
    schema = OTHER_SCHEMA if mode == "badschema" else WORKER_SCHEMA
    node.run_worker(work, schema=schema, argv=argv)


if __name__ == "__main__":
    main(sys.argv[1:])
