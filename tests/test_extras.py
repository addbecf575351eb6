"""Optional extras: a missing one gives an error that names the extra."""

from __future__ import annotations

import subprocess
import sys


def test_rpc_without_msgpack_names_the_extra() -> None:
    code = (
        "import sys; sys.modules['msgpack'] = None\n"
        "try:\n"
        "    import asyncmachine.rpc\n"
        "except ImportError as e:\n"
        "    print(e)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert "asyncmachine[rpc]" in out.stdout


def test_nats_without_nats_py_names_the_extra() -> None:
    code = (
        "import sys; sys.modules['nats'] = None\n"
        "import asyncmachine.integrations\n"  # the JSON part needs no nats-py
        "try:\n"
        "    import asyncmachine.integrations.nats\n"
        "except ImportError as e:\n"
        "    print(e)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert "asyncmachine[nats]" in out.stdout


def test_node_without_msgpack_names_the_extra() -> None:
    code = (
        "import sys; sys.modules['msgpack'] = None\n"
        "try:\n"
        "    import asyncmachine.node\n"
        "except ImportError as e:\n"
        "    print(e)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert "asyncmachine[node]" in out.stdout
