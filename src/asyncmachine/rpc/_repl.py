"""`am-repl`: a console for a remote machine served over aRPC."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import shlex
import ssl
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import anyio

import asyncmachine as am

from ._client import Client, NetMachine
from ._wire import RpcError

__all__ = ["history_path", "main", "read_secret", "readline_lines", "run_commands"]

HELP = """\
commands:
  ls                      all states with their ticks
  add STATE... [k=v...]   add states (args as key=value, values are strings)
  remove STATE... [k=v]   remove states
  set STATE... [k=v...]   set exactly these states
  toggle STATE...         toggle states
  time                    the ticks in state order
  watch                   print every pushed change (again to stop)
  help                    this text
  quit                    leave"""


def _split(words: list[str]) -> tuple[list[str], dict[str, Any]]:
    states = [w for w in words if "=" not in w]
    args = dict(w.split("=", 1) for w in words if "=" in w)
    return states, args


async def _watch(net: NetMachine, out: Callable[[str], None]) -> None:
    last = net.clock()

    def changed_since(seen: am.Clock) -> Callable[[am.Clock], bool]:
        return lambda clock: clock != seen

    while True:
        await net.when_query(changed_since(last))
        now = net.clock()
        changed = [
            f"{'+' if t & 1 else '-'}{s}:{t}" for s, t in now.items() if last[s] != t
        ]
        last = now
        out(f"[push] {' '.join(changed)}  {net}")


async def run_commands(
    client: Client, lines: AsyncIterator[str], out: Callable[[str], None]
) -> None:
    """Run REPL commands from `lines` against `client.net_mach`."""
    net = client.net_mach
    calls: dict[str, Callable[..., Awaitable[am.Result]]] = {
        "add": net.add,
        "remove": net.remove,
        "set": net.set,
        "toggle": net.toggle,
    }
    try:
        await _loop(net, calls, lines, out)
    finally:
        aclose = getattr(lines, "aclose", None)
        if aclose is not None:
            await aclose()


async def _loop(
    net: NetMachine,
    calls: dict[str, Callable[..., Awaitable[am.Result]]],
    lines: AsyncIterator[str],
    out: Callable[[str], None],
) -> None:
    async with anyio.create_task_group() as tg:
        watch: anyio.CancelScope | None = None
        async for line in lines:
            try:
                words = shlex.split(line)
            except ValueError as exc:
                out(f"error: {exc}")
                continue
            if not words:
                continue
            cmd, rest = words[0], words[1:]
            try:
                if cmd in ("quit", "exit"):
                    break
                if cmd == "help":
                    out(HELP)
                elif cmd == "ls":
                    out(net.string_all())
                elif cmd == "time":
                    out(" ".join(f"{s}:{net.tick(s)}" for s in net.state_names))
                elif cmd == "watch":
                    if watch is None:
                        watch = anyio.CancelScope()
                        tg.start_soon(_run_scoped, watch, _watch(net, out))
                        out("watching")
                    else:
                        watch.cancel()
                        watch = None
                        out("not watching")
                elif cmd in calls:
                    states, args = _split(rest)
                    result = await calls[cmd](states, args or None)
                    out(f"{result} {net}")
                else:
                    out(f"unknown command {cmd!r}; try help")
            except (am.StateNameError, RpcError, TypeError, ValueError) as exc:
                out(f"error: {exc}")
        tg.cancel_scope.cancel()


async def _run_scoped(scope: anyio.CancelScope, coro: Any) -> None:
    with scope:
        await coro


def _schema(spec: str | None, states: str | None) -> am.Schema:
    if spec:
        module, _, attr = spec.partition(":")
        obj: Any = importlib.import_module(module)
        for part in (attr or "SCHEMA").split("."):
            obj = getattr(obj, part)
        return dict(obj)
    if states:
        return {name: am.State() for name in states.split(",") if name}
    raise SystemExit("am-repl needs --schema module:ATTR or --states A,B,C")


SECRET_ENV = "AM_REPL_SECRET"
"""The environment variable holding the shared secret."""

HISTORY_ENV = "AM_REPL_HISTORY"
"""The environment variable naming the history file (default ~/.am_repl_history)."""

HISTORY_LENGTH = 1000
"""Lines kept in the history file."""


def read_secret(ns: argparse.Namespace) -> str | None:
    """The shared secret: --secret-file, else --secret, else $AM_REPL_SECRET.

    `--secret` is accepted with a warning on stderr: other users see a
    command line in the process list.
    """
    if ns.secret is not None and ns.secret_file is not None:
        raise SystemExit("am-repl: error: give --secret or --secret-file, not both")
    if ns.secret_file is not None:
        try:
            text = Path(ns.secret_file).read_text(encoding="utf-8")
        except OSError as exc:
            raise SystemExit(
                f"am-repl: error: cannot read --secret-file: {exc}"
            ) from None
        secret = text.rstrip("\r\n")
        if not secret:
            raise SystemExit(f"am-repl: error: {ns.secret_file} is empty")
        return secret
    if ns.secret is not None:
        sys.stderr.write(
            "am-repl: warning: --secret is visible to other users in the "
            f"process list (ps); use ${SECRET_ENV} or --secret-file\n"
        )
        return str(ns.secret)
    return os.environ.get(SECRET_ENV) or None


def history_path() -> Path:
    """Where the line history is kept: $AM_REPL_HISTORY or ~/.am_repl_history."""
    return Path(os.environ.get(HISTORY_ENV) or Path.home() / ".am_repl_history")


async def _stdin_lines() -> AsyncIterator[str]:
    # not a terminal (a pipe, a file): plain lines, no prompt
    while True:
        line = await anyio.to_thread.run_sync(
            sys.stdin.readline, abandon_on_cancel=True
        )
        if not line:
            return
        yield line


async def readline_lines(prompt: str, history: Path | None) -> AsyncIterator[str]:
    """Lines typed at a terminal, with line editing and a history file.

    Uses the stdlib `readline` module (when the platform has it) through
    `input()`: arrow keys edit and recall lines, and the history is loaded
    from and saved to `history`. Ends at end of input (Ctrl-D).
    """
    try:
        import readline
    except ImportError:  # pragma: no cover - platforms without readline
        readline = None  # type: ignore[assignment]
    if readline is not None and history is not None:
        readline.set_history_length(HISTORY_LENGTH)
        with contextlib.suppress(OSError):  # no history yet
            readline.read_history_file(history)
    try:
        while True:
            try:
                line = await anyio.to_thread.run_sync(
                    input, prompt, abandon_on_cancel=True
                )
            except EOFError:
                _write("")
                return
            yield line
    finally:
        if readline is not None and history is not None:
            try:
                readline.write_history_file(history)
            except OSError as exc:
                sys.stderr.write(f"am-repl: warning: history not saved: {exc}\n")


def _write(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


async def _amain(ns: argparse.Namespace, schema: am.Schema) -> int:
    host, _, port = ns.addr.rpartition(":")
    ctx = None
    if ns.tls_ca:
        ctx = ssl.create_default_context(cafile=ns.tls_ca)
    client = Client(
        host or "127.0.0.1",
        int(port),
        schema,
        id=ns.id,
        secret=ns.secret_value,
        ssl_context=ctx,
        max_retries=ns.retries,
    )
    async with client:
        ready = client.net_mach.when_connected()
        failed = client.mach.when1("ConnRetryFailed")
        with anyio.move_on_after(ns.timeout):
            async with anyio.create_task_group() as tg:

                async def first(ev: am.WhenEvent) -> None:
                    await ev
                    tg.cancel_scope.cancel()

                tg.start_soon(first, ready)
                tg.start_soon(first, failed)
        if not client.net_mach.connected:
            _write(f"cannot connect to {ns.addr}: {client.mach.err or 'timeout'}")
            return 1
        _write(f"connected to {client.net_mach.source_id} at {ns.addr}")
        _write(client.net_mach.string_all())
        if sys.stdin.isatty():
            prompt = f"{client.net_mach.source_id}> "
            lines = readline_lines(prompt, None if ns.no_history else history_path())
        else:
            lines = _stdin_lines()
        await run_commands(client, lines, _write)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """The `am-repl` console script."""
    parser = argparse.ArgumentParser(
        prog="am-repl",
        description="Use a remote asyncmachine over aRPC.",
        epilog=(
            f"The shared secret comes from --secret-file, --secret or ${SECRET_ENV}. "
            f"Line history: ${HISTORY_ENV} (default ~/.am_repl_history)."
        ),
    )
    parser.add_argument("addr", help="HOST:PORT of the aRPC server")
    parser.add_argument("--schema", help="the source's schema, as module:ATTR")
    parser.add_argument("--states", help="the source's state names, A,B,C in order")
    parser.add_argument(
        "--secret",
        help=f"the shared secret (visible in ps: prefer ${SECRET_ENV} or --secret-file)",
    )
    parser.add_argument("--secret-file", help="read the shared secret from this file")
    parser.add_argument(
        "--no-history",
        action="store_true",
        help="do not read or write the history file",
    )
    parser.add_argument("--tls-ca", help="connect with TLS, trusting this CA file")
    parser.add_argument("--id", default="repl", help="the client id")
    parser.add_argument("--retries", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=10.0)
    parser.add_argument("--backend", default="asyncio", choices=["asyncio", "trio"])
    ns = parser.parse_args(argv)
    schema = _schema(ns.schema, ns.states)
    # read (and warn) once, before connecting
    ns.secret_value = read_secret(ns)
    return anyio.run(_amain, ns, schema, backend=ns.backend)


if __name__ == "__main__":
    raise SystemExit(main())
