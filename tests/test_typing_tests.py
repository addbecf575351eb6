"""The files in typing_tests/ pass mypy --strict and pyright (strict).

They assert what users' type checkers see of typed args and typed state
names (`assert_type`), and that mistakes are errors: each mistake line
carries a `# type: ignore[...]`, and both checkers report an ignore that
is not needed, so a mistake that stops being an error fails here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TYPING_TESTS = ROOT / "typing_tests"


def _run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )


def test_typing_tests_exist() -> None:
    files = sorted(p.name for p in TYPING_TESTS.glob("*.py"))
    assert files == ["check_args.py", "check_states.py"]


def test_mypy_strict() -> None:
    proc = _run(
        sys.executable,
        "-m",
        "mypy",
        "--strict",
        "--warn-unused-ignores",
        "--cache-dir",
        os.devnull,
        str(TYPING_TESTS),
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Success: no issues found in 2 source files" in proc.stdout


def test_pyright_strict() -> None:
    exe = shutil.which("basedpyright", path=str(Path(sys.executable).parent))
    assert exe is not None, "basedpyright is in the dev extra: pip install -e '.[dev]'"
    proc = _run(exe, "--pythonpath", sys.executable, "-p", str(TYPING_TESTS))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 errors" in proc.stdout
