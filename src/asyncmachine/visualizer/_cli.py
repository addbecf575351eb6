"""The am-vis command: diagrams of a schema (or machine) in a Python module."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import ModuleType
from typing import Literal, cast

from .. import __version__
from .._machine import CoreMachine
from .._types import SchemaError, State
from ._render import RELATIONS, Relation, dot, mermaid

__all__ = ["main"]

_SUFFIXES = {".mmd": "mermaid", ".mermaid": "mermaid", ".md": "mermaid"}
_SUFFIXES |= {".dot": "dot", ".gv": "dot"}


class _Fail(Exception):
    """A usage error, printed as one line."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="am-vis",
        description=(
            "Draw a schema (a mapping of names to am.State) or a machine as a "
            "Mermaid state diagram or Graphviz DOT."
        ),
    )
    p.add_argument(
        "target",
        help=(
            "module:ATTR or path/to/file.py:ATTR; without :ATTR, the module's "
            "only *_SCHEMA"
        ),
    )
    p.add_argument(
        "-f",
        "--format",
        choices=["mermaid", "dot"],
        help="output format (default: from the -o suffix, else mermaid)",
    )
    p.add_argument("-o", "--output", help="write here instead of stdout")
    p.add_argument("--states", help="comma-separated states to draw (default: all)")
    p.add_argument(
        "--relations",
        default=",".join(RELATIONS),
        help="comma-separated relations to draw (default: all)",
    )
    p.add_argument("--active", help="comma-separated states to highlight")
    p.add_argument(
        "--direction", choices=["LR", "TB", "RL", "BT"], default="LR", help="layout"
    )
    p.add_argument(
        "--markdown",
        action="store_true",
        help="wrap Mermaid output in a ```mermaid fence (for Markdown pages)",
    )
    p.add_argument("--version", action="version", version=__version__)
    return p


def _split(value: str | None) -> list[str] | None:
    if value is None:
        return None
    return [v.strip() for v in value.split(",") if v.strip()]


def _load_module(ref: str) -> ModuleType:
    if ref.endswith(".py") or "/" in ref or os.sep in ref:
        path = Path(ref).resolve()
        if not path.is_file():
            raise _Fail(f"no such file: {ref}")
        name = f"_am_vis_{path.stem}"
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise _Fail(f"cannot load {ref}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        sys.path.insert(0, str(path.parent))
        try:
            spec.loader.exec_module(module)
        finally:
            sys.path.remove(str(path.parent))
            del sys.modules[name]
        return module
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)  # like `python -m`
    try:
        return importlib.import_module(ref)
    except ImportError as exc:
        raise _Fail(f"cannot import {ref}: {exc}") from exc


def _is_schema(value: object) -> bool:
    return (
        isinstance(value, Mapping)
        and bool(value)
        and all(isinstance(k, str) and isinstance(v, State) for k, v in value.items())
    )


def _source(target: str) -> CoreMachine | Mapping[str, State]:
    ref, sep, attr = target.rpartition(":") if ":" in target else (target, "", "")
    module = _load_module(ref)
    if sep:
        value = getattr(module, attr, None)
        if isinstance(value, CoreMachine):
            return value
        if not _is_schema(value):
            raise _Fail(
                f"{target}: {attr} is not a schema (a mapping of names to "
                "am.State) nor a machine"
            )
        return cast("Mapping[str, State]", value)
    found = [
        name
        for name, value in vars(module).items()
        if name.endswith("_SCHEMA") and _is_schema(value)
    ]
    if len(found) != 1:
        what = f"several schemas ({', '.join(found)})" if found else "no *_SCHEMA"
        raise _Fail(f"{ref} has {what}; name one as {ref}:NAME")
    return cast("Mapping[str, State]", getattr(module, found[0]))


def main(argv: Sequence[str] | None = None) -> int:
    """Run am-vis; returns the exit status (2 for bad input)."""
    parser = _parser()
    args = parser.parse_args(argv)
    fmt = args.format
    if fmt is None:
        suffix = Path(args.output).suffix.lower() if args.output else ""
        fmt = _SUFFIXES.get(suffix, "mermaid")
    if args.markdown and fmt != "mermaid":
        parser.error("--markdown goes with the mermaid format")
    relations = _split(args.relations) or []
    direction = cast("Literal['LR', 'TB', 'RL', 'BT']", args.direction)
    try:
        source = _source(args.target)
        render = mermaid if fmt == "mermaid" else dot
        text = render(
            source,
            states=_split(args.states),
            relations=cast("list[Relation]", relations),
            active=_split(args.active),
            direction=direction,
        )
    except (_Fail, SchemaError, ValueError) as exc:
        sys.stderr.write(f"am-vis: error: {exc}\n")
        return 2
    if args.markdown:
        text = f"```mermaid\n{text}```\n"
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0
