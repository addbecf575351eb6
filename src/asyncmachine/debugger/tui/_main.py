"""`am-dbg` command line: a live collector or a saved session in the UI.

    am-dbg [--listen-addr HOST:PORT] [--import-data FILE] [mach://ID/TX/STEP]

Without `--import-data` it listens on `--listen-addr` (localhost:6831 by
default); with both, the imported session keeps growing. See docs/am-dbg.md.
"""

from __future__ import annotations

import argparse
import sys

from .._collector import Collector
from .._model import Session
from .._session import read_session
from .._tracer import DEFAULT_ADDR, parse_addr
from ._app import DebuggerApp
from ._views import parse_url

__all__ = ["main", "parse_args"]


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Parse am-dbg's flags (Go's names)."""
    p = argparse.ArgumentParser(
        prog="am-dbg", description="asyncmachine terminal debugger"
    )
    p.add_argument("machurl", nargs="?", default="", help="mach://ID/TX/STEP to select")
    p.add_argument(
        "--listen-addr",
        "-l",
        default="",
        help=f"collector address (default {DEFAULT_ADDR} without --import-data)",
    )
    p.add_argument("--import-data", "-i", default="", help="a saved session file")
    p.add_argument("--select-machine", "-m", default="", help="machine id to select")
    p.add_argument(
        "--select-transition",
        "-t",
        type=int,
        default=0,
        help="transition number (1-based)",
    )
    p.add_argument(
        "--output-session",
        default="am-dbg-session.amdbg",
        help="where export (ctrl+s) writes the session",
    )
    p.add_argument("--max-mem", type=int, default=0, help="memory cap, in MB")
    p.add_argument("--fps", type=float, default=10.0, help="redraws per second")
    return p.parse_args(argv)


def _err(text: str) -> int:
    sys.stderr.write(f"am-dbg: {text}\n")
    return 2


def main(argv: list[str] | None = None) -> int:
    """Run am-dbg; returns the exit code."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    cap = args.max_mem * 1024 * 1024
    if args.machurl:
        try:
            parse_url(args.machurl)
        except ValueError as exc:
            return _err(str(exc))
    if args.import_data:
        try:
            session = read_session(args.import_data, max_memory=cap)
        except (OSError, ValueError) as exc:
            return _err(str(exc))
    else:
        session = Session(max_memory=cap)
    collector = None
    if args.listen_addr or not args.import_data:
        addr = args.listen_addr or DEFAULT_ADDR
        try:
            parse_addr(addr)
        except ValueError as exc:
            return _err(str(exc))
        collector = Collector(addr, session=session)
    mach, tx = args.select_machine, args.select_transition
    url = args.machurl or (f"mach://{mach}/{tx or ''}" if mach else "")
    if url and collector is None:
        # an imported session: a bad address is an error up front
        probe = DebuggerApp(session)
        try:
            probe.goto(url)
        except ValueError as exc:
            return _err(str(exc))
    DebuggerApp(
        session,
        collector=collector,
        url=url,
        export_path=args.output_session,
        fps=args.fps,
    ).run()
    return 0
