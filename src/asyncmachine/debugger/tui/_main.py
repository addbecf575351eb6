"""`am-dbg` command line: open a saved session in the terminal UI."""

from __future__ import annotations

import argparse
import sys

from ._app import DebuggerApp
from ._data import Session

__all__ = ["main", "parse_args"]


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Parse am-dbg's flags (Go's names)."""
    p = argparse.ArgumentParser(
        prog="am-dbg", description="asyncmachine terminal debugger"
    )
    p.add_argument("machurl", nargs="?", default="", help="mach://ID/TX to select")
    p.add_argument("--listen-addr", "-l", default="", help="collector address")
    p.add_argument("--import-data", "-i", default="", help="a saved session file")
    p.add_argument("--select-machine", default="", help="machine id to select")
    p.add_argument(
        "--select-transition", type=int, default=0, help="transition number (1-based)"
    )
    p.add_argument(
        "--output-session", default="am-dbg-session.json", help="export path"
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run am-dbg; returns the exit code."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.listen_addr:
        sys.stderr.write(
            "am-dbg: --listen-addr needs the debug-stream collector, not built yet\n"
        )
        return 2
    session = Session.load(args.import_data) if args.import_data else Session()
    mach, tx = args.select_machine, args.select_transition - 1
    if args.machurl:
        if not args.machurl.startswith("mach://"):
            sys.stderr.write(f"am-dbg: not a mach:// URL: {args.machurl}\n")
            return 2
        parts = args.machurl[len("mach://") :].split("/")
        mach = parts[0]
        if len(parts) > 1 and parts[1].isdigit():
            tx = int(parts[1]) - 1
    if mach and mach not in session.machines:
        sys.stderr.write(f"am-dbg: no machine {mach!r} in the session\n")
        return 2
    DebuggerApp(
        session,
        select_machine=mach,
        select_transition=tx,
        export_path=args.output_session,
    ).run()
    return 0
