"""`am-dbg` command line: a live collector or a saved session in the UI.

    am-dbg [--listen-addr HOST:PORT] [--import-data FILE] [mach://ID/TX/STEP]

Without `--import-data` it listens on `--listen-addr` (localhost:6831 by
default); with both, the imported session keeps growing. See docs/am-dbg.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .._collector import Collector
from .._model import Session
from .._session import read_session
from .._tracer import DEFAULT_ADDR, parse_addr
from ._app import DebuggerApp
from ._views import parse_url

__all__ = ["main", "make_app", "parse_args", "parser"]


def parser() -> argparse.ArgumentParser:
    """The parser of am-dbg's UI flags (Go's names)."""
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
    p.add_argument("--dir", "-d", default=".", help="directory of exported sessions")
    p.add_argument(
        "--output-session",
        default="",
        help="where export (ctrl+s) writes (default DIR/am-dbg-session.amdbg)",
    )
    for name, help_ in (
        ("auto", "automatic transitions"),
        ("canceled", "canceled transitions"),
        ("checks", "check (read-only) transitions"),
        ("disconn", "disconnected clients"),
        ("empty", "empty transitions"),
        ("queued", "queued transitions"),
    ):
        p.add_argument(f"--filter-{name}", action="store_true", help=f"hide {help_}")
    for name, help_ in (
        ("tx", "tx.md: the selected transition with its steps"),
        ("clients", "clients.txt: the client list"),
        ("log", "log.txt: the log view's lines"),
    ):
        p.add_argument(
            f"--output-{name}", action="store_true", help=f"keep DIR/{help_}"
        )
    p.add_argument(
        "--filter-log-level",
        type=int,
        default=5,
        help="log lines up to this level (0-5)",
    )
    p.add_argument(
        "--view",
        "-v",
        choices=["tree-log", "matrix", "relations"],
        default="tree-log",
        help="initial view",
    )
    p.add_argument("--view-rain", action="store_true", help="show the rain view")
    p.add_argument("--view-narrow", action="store_true", help="force the narrow view")
    p.add_argument("--max-mem", type=int, default=0, help="memory cap, in MB")
    p.add_argument("--fps", type=float, default=10.0, help="redraws per second")
    return p


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Parse am-dbg's UI flags."""
    return parser().parse_args(argv)


def _err(text: str) -> int:
    sys.stderr.write(f"am-dbg: {text}\n")
    return 2


def make_app(argv: list[str]) -> DebuggerApp:
    """The app `argv` describes (ValueError naming what is wrong)."""
    args = parse_args(argv)
    cap = args.max_mem * 1024 * 1024
    if args.machurl:
        parse_url(args.machurl)
    if args.import_data:
        try:
            session = read_session(args.import_data, max_memory=cap)
        except OSError as exc:
            raise ValueError(f"cannot read {args.import_data}: {exc}") from exc
    else:
        session = Session(max_memory=cap)
    collector = None
    if args.listen_addr or not args.import_data:
        addr = args.listen_addr or DEFAULT_ADDR
        parse_addr(addr)
        collector = Collector(addr, session=session)
    mach, tx = args.select_machine, args.select_transition
    url = args.machurl or (f"mach://{mach}/{tx or ''}" if mach else "")
    filters = [
        "disconnected" if f == "disconn" else f
        for f in ("auto", "canceled", "checks", "disconn", "empty", "queued")
        if getattr(args, f"filter_{f}")
    ]
    app = DebuggerApp(
        session,
        collector=collector,
        url=url,
        export_path=args.output_session or Path(args.dir) / "am-dbg-session.amdbg",
        fps=args.fps,
        filters=filters,
        log_level=args.filter_log_level,
        matrix={"tree-log": "", "matrix": "tx", "relations": "relations"}[args.view],
        rain=args.view_rain,
        narrow=args.view_narrow,
        gc_freeze=True,
        output_dir=args.dir,
        outputs=[o for o in ("tx", "clients", "log") if getattr(args, f"output_{o}")],
    )
    if url and collector is None:
        # an imported session: a bad address is an error up front
        app.goto(url)
    return app


def main(argv: list[str] | None = None) -> int:
    """Run am-dbg; returns the exit code (2 for bad arguments or files)."""
    try:
        app = make_app(sys.argv[1:] if argv is None else argv)
    except ValueError as exc:
        return _err(str(exc))
    app.run()
    return 0
