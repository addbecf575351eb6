"""What type checkers see of typed args (checked by mypy and pyright)."""

from __future__ import annotations

from typing import Any, assert_type

import asyncmachine as am
from asyncmachine.helpers import args_from_wire, args_log_fields, args_to_wire


@am.args_class(key="typing_tests.download")
class DownloadArgs:
    """Args of a download."""

    url: str = am.arg(log="url")
    retries: int = am.arg(default=3, log="retries")
    tags: tuple[str, ...] = am.arg(factory=tuple)
    note: str | None = None


@am.args_class(frozen=False)
class Counter:
    """Mutable args."""

    n: int = 0


@am.args_class
class Bare:
    """Args declared with the bare decorator."""

    flag: bool


def handler(e: am.Event) -> None:
    """A handler reads its args with full types."""
    a = am.parse_args(DownloadArgs, e.args)
    assert_type(a, DownloadArgs | None)
    if a is not None:
        assert_type(a.url, str)
        assert_type(a.retries, int)
        assert_type(a.tags, tuple[str, ...])
        assert_type(a.note, str | None)


def mutations(mach: am.Machine) -> None:
    """Passing typed args into a mutation."""
    args = am.pass_args(DownloadArgs(url="https://example.com"), extra=1)
    assert_type(args, dict[str, Any])
    mach.add1("Downloading", args)
    mach.add1("Downloading", am.pass_args(DownloadArgs("https://example.com", 5)))
    assert_type(am.parse_args(Counter, args), Counter | None)
    assert_type(Bare(flag=True).flag, bool)
    assert_type(args_to_wire(args), dict[str, Any])
    assert_type(args_from_wire({}), dict[str, Any])
    assert_type(args_log_fields(args), dict[str, str])


def mistakes() -> None:
    """Each line is an error; the ignore would be unused (an error) if not."""
    DownloadArgs(url=5)  # type: ignore[arg-type]
    DownloadArgs()  # type: ignore[call-arg]
    DownloadArgs(url="u", retries="3")  # type: ignore[arg-type]
    DownloadArgs(url="u", color="red")  # type: ignore[call-arg]
    DownloadArgs(url="u").url = "v"  # type: ignore[misc]
    Bare()  # type: ignore[call-arg]


def mutable() -> None:
    """A `frozen=False` args class can be changed."""
    c = Counter()
    c.n += 1
