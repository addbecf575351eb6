"""The import rules of docs/design/architecture.md, read from the source."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import asyncmachine

SRC = Path(asyncmachine.__file__).resolve().parent

CORE = {
    "_types",
    "_args",
    "_schema",
    "_resolve",
    "_transition",
    "_handlers",
    "_log",
    "_tracer",
    "_ctx",
    "_machine",
    "_states",
    "_exception",
    "_lint",
    "_export",
}
RUNTIME = {"_runtime", "_loop"}
LIBRARIES = {"helpers", "pipes", "states", "testing", "telemetry", "gen", "visualizer"}
# what each unit may import from asyncmachine (besides itself)
ALLOWED: dict[str, set[str]] = {
    **{m: CORE for m in CORE},
    "_runtime": CORE | {"_loop"},
    "_loop": set(),
    "__init__": CORE | RUNTIME,
    **{lib: CORE | RUNTIME | {"asyncmachine"} for lib in LIBRARIES},
    "rpc": CORE | RUNTIME | {"asyncmachine", "helpers", "states"},
    "history": CORE | RUNTIME | {"asyncmachine"},
    "integrations": CORE | RUNTIME | {"asyncmachine", "helpers"},
    # the am-repl entry point, outside rpc so a missing extra is one line
    "_repl_main": {"rpc"},
    "debugger": CORE | RUNTIME | {"asyncmachine"},
    "node": CORE | RUNTIME | {"asyncmachine", "rpc", "states"},
}
# third-party packages each unit may import at run time
THIRD_PARTY: dict[str, set[str]] = {
    **{m: {"attrs", "cattrs"} for m in CORE},
    "_runtime": {"anyio", "trio"},
    "_loop": {"sniffio", "trio"},
    "__init__": set(),
    "helpers": {"anyio", "attrs"},
    "pipes": set(),
    "states": set(),
    "testing": {"anyio", "hypothesis"},
    "telemetry": {"opentelemetry", "prometheus_client"},
    "gen": {"attrs"},
    "visualizer": set(),
    "rpc": {"anyio", "attrs", "msgpack"},
    "history": {"anyio", "attrs", "sqlalchemy", "psycopg"},
    "integrations": {"anyio", "attrs", "nats"},
    "_repl_main": set(),
    "debugger": {"anyio", "attrs", "msgpack", "brotli", "textual", "rich"},
    "node": {"anyio", "msgpack", "sniffio"},
}
KNOWN_THIRD_PARTY = {
    "anyio",
    "sniffio",
    "trio",
    "attrs",
    "cattrs",
    "msgpack",
    "brotli",
    "hypothesis",
    "opentelemetry",
    "prometheus_client",
    "pytest",
    "sqlalchemy",
    "psycopg",
    "nats",
    "textual",
    "rich",
}


def _unit(path: Path) -> str:
    rel = path.relative_to(SRC)
    if len(rel.parts) == 1:
        return rel.stem
    return rel.parts[0]


def _runtime_imports(path: Path) -> list[str]:
    """Absolute names of the modules `path` imports outside TYPE_CHECKING."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for n in ast.walk(node))
    rel = path.relative_to(SRC.parent).with_suffix("")
    package = list(rel.parts[:-1])
    names: list[str] = []
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
                if node.module is None:  # from . import x
                    names += [f"{mod}.{a.name}" for a in node.names]
                    continue
                names.append(mod)
            else:
                names.append(node.module or "")
    return names


def _target(name: str) -> str | None:
    """The unit an `asyncmachine...` import lands in; None for the package."""
    parts = name.split(".")
    if len(parts) == 1 or parts[1] not in ALLOWED:  # e.g. `from .. import __version__`
        return "asyncmachine"
    return parts[1]


FILES = sorted(SRC.rglob("*.py"))


def test_every_unit_has_rules() -> None:
    units = {_unit(p) for p in FILES}
    assert units <= set(ALLOWED), units - set(ALLOWED)
    assert units >= CORE


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(SRC)))
def test_imports_follow_the_layers(path: Path) -> None:
    unit = _unit(path)
    for name in _runtime_imports(path):
        top = name.split(".")[0]
        if top == "asyncmachine":
            target = _target(name)
            assert target is not None
            if target == unit:
                continue
            assert target in ALLOWED[unit], f"{unit} imports {name}"
        elif top in KNOWN_THIRD_PARTY:
            assert top in THIRD_PARTY[unit], f"{unit} imports {name}"


def test_the_checker_reads_imports() -> None:
    # the rules are not vacuous: the core's machine does import the core
    names = _runtime_imports(SRC / "_machine.py")
    assert "asyncmachine._resolve" in names
    assert all(_target(n) in CORE for n in names if n.startswith("asyncmachine"))
    assert "asyncmachine._runtime" not in names
    assert "asyncmachine._runtime" in _runtime_imports(SRC / "__init__.py")


@pytest.mark.parametrize("unit", sorted(CORE))
def test_the_core_imports_no_event_loop_library(unit: str) -> None:
    """The synchronous core imports neither asyncio nor trio (nor anyio or
    sniffio): only the runtime (`_runtime`, `_loop`) binds to a loop."""
    loops = {"asyncio", "trio", "anyio", "sniffio"}
    names = _runtime_imports(SRC / f"{unit}.py")
    assert not {n.split(".")[0] for n in names} & loops, names
    assert "asyncio" in {n.split(".")[0] for n in _runtime_imports(SRC / "_loop.py")}
