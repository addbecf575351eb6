"""The `am-repl` console script's entry point.

It lives outside `asyncmachine.rpc` so that a missing `rpc` extra (msgpack)
is reported as one line instead of an import traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run am-repl; exit status 2 with one line when the rpc extra is missing."""
    try:
        from asyncmachine.rpc._repl import main as repl_main
    except ImportError as exc:
        cause = exc.__cause__
        missing = exc.name or getattr(cause, "name", None) or "a dependency"
        sys.stderr.write(
            f"am-repl: error: {missing} is not installed; "
            "install the rpc extra: pip install 'asyncmachine[rpc]'\n"
        )
        return 2
    return repl_main(argv)
