"""The code in the README and the docs runs, and prints what it says.

Every fenced block tagged ``python`` in the files below is executed, the
blocks of one file in order and in one namespace, statement by statement.
For a top-level ``print(...)`` statement, the expected output is the comment
at the end of its last line or, if there is none, the comment-only lines
right below it (one line of output per comment line). Blocks tagged
differently (``py``, ``text``, ``sh``) are not run.
"""

from __future__ import annotations

import ast
import contextlib
import io
import re
import tokenize
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [
    "README.md",
    "docs/index.md",
    "docs/manual.md",
    "docs/cookbook.md",
    "docs/helpers.md",
    "docs/typed.md",
    "docs/rpc.md",
    "docs/diagrams.md",
    "docs/migrating.md",
    "docs/security.md",
    "docs/history.md",
    "docs/nats.md",
    "docs/node.md",
    "docs/am-dbg.md",
]

_FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.M | re.S)


def python_blocks(text: str) -> list[tuple[int, str]]:
    """(first line number in the file, code) of every ``python`` block."""
    return [
        (text.count("\n", 0, m.start(1)) + 1, m.group(1)) for m in _FENCE.finditer(text)
    ]


def _comments(code: str) -> tuple[dict[int, str], dict[int, str]]:
    """Trailing comments and comment-only lines, by line number (1-based)."""
    trailing: dict[int, str] = {}
    alone: dict[int, str] = {}
    code_lines: set[int] = set()
    skip = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT}
    skip |= {tokenize.DEDENT, tokenize.ENCODING, tokenize.ENDMARKER}
    tokens = list(tokenize.generate_tokens(io.StringIO(code).readline))
    for tok in tokens:
        if tok.type not in skip:
            code_lines.update(range(tok.start[0], tok.end[0] + 1))
    for tok in tokens:
        if tok.type == tokenize.COMMENT:
            text = tok.string[1:].strip()
            (trailing if tok.start[0] in code_lines else alone)[tok.start[0]] = text
    return trailing, alone


def _expected(
    stmt: ast.stmt, trailing: dict[int, str], alone: dict[int, str]
) -> str | None:
    if not (
        isinstance(stmt, ast.Expr)
        and isinstance(stmt.value, ast.Call)
        and isinstance(stmt.value.func, ast.Name)
        and stmt.value.func.id == "print"
    ):
        return None
    end = stmt.end_lineno or stmt.lineno
    if end in trailing:
        return trailing[end]
    lines = []
    line = end + 1
    while line in alone:
        lines.append(alone[line])
        line += 1
    return "\n".join(lines) if lines else None


def run_blocks(path: str) -> None:
    text = (ROOT / path).read_text(encoding="utf-8")
    blocks = python_blocks(text)
    assert blocks, f"{path} has no python block"
    namespace: dict[str, object] = {"__name__": "__doc_snippet__"}
    for first_line, code in blocks:
        tree = ast.parse(code)
        trailing, alone = _comments(code)
        for stmt in tree.body:
            where = f"{path}:{first_line + stmt.lineno - 1}"
            compiled = compile(ast.Module(body=[stmt], type_ignores=[]), where, "exec")
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                exec(compiled, namespace)
            expected = _expected(stmt, trailing, alone)
            if expected is not None:
                got = out.getvalue().rstrip("\n")
                assert got == expected, (
                    f"{where}: printed {got!r}, the doc says {expected!r}"
                )


@pytest.mark.parametrize("path", DOCS)
def test_doc_snippets(path: str) -> None:
    run_blocks(path)


def test_snippet_parser() -> None:
    code = 'x = 1\nprint(x)  # 1\nprint(x, x)\n# 1 1\nprint("a")\n'
    tree = ast.parse(code)
    trailing, alone = _comments(code)
    got = [_expected(s, trailing, alone) for s in tree.body]
    assert got == [None, "1", "1 1", None]
    assert python_blocks("a\n```python\nx = 1\n```\n```py\ny\n```\n") == [
        (3, "x = 1\n")
    ]
