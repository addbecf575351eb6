"""`am-dbg`: the collector and headless views on the command line.

    am-dbg serve [--listen-addr HOST:PORT] [--output-file FILE]
    am-dbg clients FILE
    am-dbg tx FILE MACHINE_ID [--index N]
    am-dbg mermaid FILE MACHINE_ID [--index N]

Any other arguments go to the Textual UI (`asyncmachine.debugger.tui`) when
it is installed. See docs/debugger.md.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import signal
import sys
from collections.abc import Sequence

import anyio
import anyio.abc

from ._collector import Collector
from ._session import read_session, write_session
from ._tracer import DEFAULT_ADDR
from ._view import list_clients, mermaid, tx_string

__all__ = ["main"]

_COMMANDS = ("serve", "clients", "tx", "mermaid")


def _ui_help() -> str:
    # the terminal UI's flags, for `am-dbg --help`
    try:
        tui = importlib.import_module("asyncmachine.debugger.tui")
    except ImportError:
        return ""
    text: str = tui.parser().format_help()
    return "without a subcommand, the terminal UI:\n\n" + text


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="am-dbg",
        description="asyncmachine debugger",
        epilog=_ui_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve", help="run a headless collector")
    s.add_argument("--listen-addr", "-l", default=DEFAULT_ADDR)
    s.add_argument("--output-file", "-o", default="", help="session file to write")
    s.add_argument(
        "--save-every", type=float, default=10.0, help="seconds between saves"
    )
    s.add_argument("--max-mem", type=int, default=0, help="memory cap, in MB")
    s.add_argument(
        "--duration", type=float, default=0.0, help="stop after this many seconds"
    )
    c = sub.add_parser("clients", help="list the machines of a session file")
    c.add_argument("file")
    for name in ("tx", "mermaid"):
        t = sub.add_parser(name, help=f"print a machine's transitions ({name})")
        t.add_argument("file")
        t.add_argument("machine")
        t.add_argument(
            "--index", type=int, default=None, help="only this transition (-1: last)"
        )
    return p


async def _serve(args: argparse.Namespace) -> None:
    col = Collector(args.listen_addr, max_memory=args.max_mem * 1024 * 1024)

    def save() -> None:
        if args.output_file:
            write_session(args.output_file, col.session)

    try:
        async with col, anyio.create_task_group() as tg:
            if sys.platform != "win32":
                await tg.start(_stop_on_sigterm, tg.cancel_scope)
            sys.stdout.write(f"am-dbg: listening on {col.host}:{col.port}\n")
            sys.stdout.flush()
            elapsed = 0.0
            step = args.save_every if args.output_file else 3600.0
            if args.duration:
                step = min(step, args.duration)
            while not args.duration or elapsed < args.duration:
                await anyio.sleep(step)
                elapsed += step
                save()
            tg.cancel_scope.cancel()
    finally:
        save()


async def _stop_on_sigterm(
    scope: anyio.CancelScope,
    *,
    task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    # SIGTERM (kill, docker stop, systemd) stops the collector as Ctrl+C
    # does: the session file is saved on the way out
    with anyio.open_signal_receiver(signal.SIGTERM) as signals:
        task_status.started()
        async for _ in signals:
            scope.cancel()
            return


def _err(text: str) -> None:
    sys.stderr.write(f"am-dbg: {text}\n")


def main(argv: Sequence[str] | None = None) -> int:
    """Run am-dbg with `argv` (defaults to `sys.argv[1:]`); returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in (*_COMMANDS, "-h", "--help"):
        try:
            tui = importlib.import_module("asyncmachine.debugger.tui")
        except ImportError:
            _err(
                "the TUI is not available (asyncmachine.debugger.tui is "
                "not installed); use a subcommand: " + ", ".join(_COMMANDS)
            )
            return 2
        return int(tui.main(argv) or 0)
    args = _parser().parse_args(argv)
    if args.cmd == "serve":
        with contextlib.suppress(KeyboardInterrupt):
            anyio.run(_serve, args)
        return 0
    try:
        session = read_session(args.file)
    except (OSError, ValueError) as exc:
        _err(f"{exc}")
        return 1
    if args.cmd == "clients":
        sys.stdout.write(list_clients(session))
        return 0
    mach = session.machines.get(args.machine)
    if mach is None:
        _err(f"no machine {args.machine!r} in {args.file}")
        return 1
    txs = mach.transitions
    if args.index is not None:
        try:
            txs = [txs[args.index]]
        except IndexError:
            _err(f"no transition {args.index} of {mach.id}")
            return 1
    for tx in txs:
        if args.cmd == "tx":
            sys.stdout.write(tx_string(mach.id, tx) + "\n")
        else:
            sys.stdout.write(mermaid(mach, tx) + "\n")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
