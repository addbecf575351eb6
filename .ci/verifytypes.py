"""Fail when the type completeness of the installed asyncmachine is under 95%.

Runs ``basedpyright --verifytypes asyncmachine --ignoreexternal`` against
the environment of the Python that runs this script (its virtualenv is
"activated" for pyright, which finds packages through the ``python`` on
PATH) and parses the JSON report. Usage::

    .venv/bin/python .ci/verifytypes.py [--min 95] [--show 20]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path


FLAGS = ["--ignoreexternal", "--outputjson"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--min", type=float, default=95.0, help="percent")
    parser.add_argument("--show", type=int, default=20, help="symbols to list")
    parser.add_argument(
        "--pyright",
        default=str(Path(sys.executable).parent / "basedpyright"),
        help="the basedpyright executable (default: next to this Python)",
    )
    opts = parser.parse_args()
    env = dict(os.environ)
    venv = Path(sys.prefix)
    env["VIRTUAL_ENV"] = str(venv)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    # run outside the checkout, so pyright cannot pick up ./src by accident
    with tempfile.TemporaryDirectory() as cwd:
        proc = subprocess.run(
            [opts.pyright, "--verifytypes", "asyncmachine", *FLAGS],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
    try:
        report = json.loads(proc.stdout)["typeCompleteness"]
    except (ValueError, KeyError):
        print(proc.stdout, proc.stderr, sep="\n", file=sys.stderr)
        print("verifytypes: no JSON report", file=sys.stderr)
        return 2
    if not report.get("pyTypedPath"):
        print(f"verifytypes: asyncmachine not found in {venv}", file=sys.stderr)
        return 2
    score = 100 * float(report["completenessScore"])
    counts = report["exportedSymbolCounts"]
    unknown = [s for s in report["symbols"] if not s["isTypeKnown"]]
    for sym in unknown[: opts.show]:
        msg = sym["diagnostics"][0]["message"] if sym["diagnostics"] else ""
        print(f"  {sym['name']}: {msg.splitlines()[0] if msg else 'partially unknown'}")
    if len(unknown) > opts.show:
        print(f"  ... and {len(unknown) - opts.show} more")
    print(
        f"verifytypes: {score:.1f}% of exported symbols fully typed "
        f"({counts['withKnownType']} known, {counts['withAmbiguousType']} "
        f"ambiguous, {counts['withUnknownType']} unknown); package at "
        f"{report['packageRootDirectory']}"
    )
    if score < opts.min:
        print(f"verifytypes: {score:.1f}% is under {opts.min}%", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
